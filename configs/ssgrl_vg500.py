r"""SSGRL on Visual Genome's 500 most frequent object names (the paper's Table 4): train -> test.

The network and training of configs/ssgrl_coco.py (ResNet-101 frozen before layer4, Adam 1e-5, batch 4,
learning rate /10 on a plateau of the training loss; 20 epochs, the paper gives no count). The dataset is
jaxgraphs' `vg500` builder (jaxgraphs/data/builders/vg500.py): the 500 names found in the most training images
after normalisation, a fixed-seed 10,000-image test split, the rest train. VG-500 has no validation split:
nothing is selected on test, the last checkpoint is the result and `test` is evaluated once at the end.
The class vocabulary lives in the prepared dataset, so the word vectors are made from it (--dataset=vg500).

  python -m jaxgraphs.tools.prepare_dataset --dataset=vg500 --manual_dir=/data/visual_genome
  python -m jaxgraphs.tools.word_vectors --glove=glove.840B.300d.txt --dataset=vg500 \
      --out=~/jaxgraphs/word_vectors/vg500_glove.npy
  python -m jaxgraphs.main --config=configs/ssgrl_vg500.py --workdir=~/runs/ssgrl_vg500 \
      --config.model.backbone_init=~/weights/resnet101
"""

from jaxgraphs.models import ssgrl

# Visual Genome 1.2 has 108,077 images; 10,000 go to test.
NUM_TRAIN = 98077


def get_config(arg: str = "full"):
  """SSGRL (or a Table 5 row) on VG-500."""
  return ssgrl.paper_config("vg500", "train", "test", NUM_TRAIN, "~/jaxgraphs/word_vectors/vg500_glove.npy", arg)
