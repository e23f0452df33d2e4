r"""LinkNet PredCls on VG-150 (Woo et al. 2018, Table 1: R@20/50/100 = 61.8 / 67.0 / 68.5).

GT boxes and labels in, predicates out. VGG-16 (torchvision ImageNet weights, convolutions frozen as the
reference freezes its detector) on 592 px inputs padded to 592 x 592, conv5_3 at stride 16, RoIAlign 7x7 ->
fc6/fc7 (4096); K0 of the one-hot GT labels (200), global context (512), two object and two edge relational
embedding modules (r = 2, hidden 256), union-box fc7 features, layout embedding (128). Training: 256 pairs per
image (<= 64 annotated, the rest background), one predicate per pair, flips; SGD 6e-3 (1e-3 per image, batch
6), momentum 0.9, weight decay 1e-4, gradient norm 5, 9 epochs with lr / 10 after 6 (the reference decays on
a validation plateau). Evaluated on the 5,000-image val split every epoch (best checkpoint by R@50); the
paper reports test. What differs from the reference implementation: jaxgraphs/models/linknet.py docstring.

  python -m jaxgraphs.tools.prepare_dataset --dataset=vg150 --manual_dir=~/vg150_files
  python -m jaxgraphs.tools.convert_torchvision --arch=vgg16 --src=vgg16-397923af.pth --dst=~/weights/vgg16
  python -m jaxgraphs.main --config=configs/linknet_vg_predcls.py --workdir=~/runs/linknet_predcls \
      --config.model.backbone_init=~/weights/vgg16
  python -m jaxgraphs.main --config=configs/linknet_vg_predcls.py --workdir=~/runs/linknet_predcls --mode=eval \
      --checkpoint=best --eval_split=test

Variants: `--config=configs/linknet_vg_predcls.py:ARG`, ARG as in jaxgraphs.models.linknet.VARIANT_ARG_HELP
(num_re=, r= (Table 2a); e0= (Table 2b); rem=, glem=, gcem=, norm=, sim= (Table 3)).
Memory: with 64 objects evaluation scores 4,096 pairs per image in chunks of `model.union_chunk_size`;
`--config.model.dtype=bfloat16` halves activations on accelerators.
"""

from jaxgraphs.models import linknet


def get_config(arg=None):
  """VG-150 PredCls; `arg` picks ablations (module docstring)."""
  return linknet.vg150_config("predcls", arg)
