r"""SSGRL on PASCAL VOC 2007 (the paper's Table 2): trainval -> test.

The network and training of configs/ssgrl_coco.py (ResNet-101 frozen before layer4, Adam 1e-5, batch 4,
learning rate /10 on a plateau of the training loss; 20 epochs, the paper gives no count). Classes whose
instances in an image are all "difficult" are ignored in the loss and in AP (the standard protocol;
`--config.data.voc_difficult=negative` counts them as negatives as the SSGRL code does). The last
checkpoint is reported; nothing is selected on the test split.

  python -m jaxgraphs.tools.prepare_dataset --dataset=voc/2007
  python -m jaxgraphs.tools.word_vectors --glove=glove.840B.300d.txt --dataset=voc/2007 \
      --out=~/jaxgraphs/word_vectors/voc_glove.npy
  python -m jaxgraphs.main --config=configs/ssgrl_voc2007.py --workdir=~/runs/ssgrl_voc2007 \
      --config.model.backbone_init=~/weights/resnet101

Table 2's "Ours (pre)": start from a finished COCO run instead of ImageNet. Every parameter but the 80 COCO
classifiers carries over (none of them depends on the number of classes; `init_from.dont_load` below leaves
the classifiers fresh); the VOC word vectors and adjacency replace COCO's as module constants:

  python -m jaxgraphs.main --config=configs/ssgrl_voc2007.py --workdir=~/runs/ssgrl_voc2007_pre \
      --config.init_from.workdir=~/runs/ssgrl_coco
"""

from jaxgraphs.models import ssgrl

NUM_TRAIN = 5011


def get_config(arg: str = "full"):
  """SSGRL (or a Table 5 row) on VOC 2007."""
  return ssgrl.paper_config("voc/2007", "train+validation", "test", NUM_TRAIN, "~/jaxgraphs/word_vectors/voc_glove.npy",
                            arg, log_every_steps=100, checkpoint_every_steps=1000)
