r"""LinkNet SGCls on VG-150 (Woo et al. 2018, Table 1: R@20/50/100 = 38.3 / 41.0 / 41.7; Tables 2-3 ablate it).

GT boxes in, object labels and predicates out. As configs/linknet_vg_predcls.py, except: K0 gets the softmax
of an object classifier on the RoI features trained alongside (the reference uses its frozen detector's
distribution), K1 gets the GT labels in training and argmax(O4) over the 150 classes at test, and objects are
scored by their O4 probability in the recall ranking.

  python -m jaxgraphs.tools.prepare_dataset --dataset=vg150 --manual_dir=~/vg150_files
  python -m jaxgraphs.tools.convert_torchvision --arch=vgg16 --src=vgg16-397923af.pth --dst=~/weights/vgg16
  python -m jaxgraphs.main --config=configs/linknet_vg_sgcls.py --workdir=~/runs/linknet_sgcls \
      --config.model.backbone_init=~/weights/vgg16
  python -m jaxgraphs.main --config=configs/linknet_vg_sgcls.py:num_re=3 --workdir=~/runs/linknet_sgcls_re3 \
      --config.model.backbone_init=~/weights/vgg16

Variants: `--config=configs/linknet_vg_sgcls.py:ARG`, ARG as in jaxgraphs.models.linknet.VARIANT_ARG_HELP:
  Table 2a: num_re=1|2|3|4, r=1|2|4|8       Table 2b: e0=labels | e0=context | e0=both (default)
  Table 3:  rem=0, glem=0, gcem=0, norm=sigmoid, sim=euclidean (combine with commas, e.g. glem=0,gcem=0)
"""

from jaxgraphs.models import linknet


def get_config(arg=None):
  """VG-150 SGCls; `arg` picks ablations (module docstring)."""
  return linknet.vg150_config("sgcls", arg)
