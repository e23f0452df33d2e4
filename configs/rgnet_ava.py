r"""RGNet on AVA (Liu et al., Sec. 3.3 and 4): binary high/low aesthetics, accuracy and AP (Tables 1-3).

DenseNet-121 at output stride 8 from torchvision's ImageNet weights, DenseASPP (3, 6, 12, 18), three graph
convolutions, per-region 2-class scores, LSE pooling (r = 4); 300 x 300 inputs (resize, flip, scale by
1.05-1.25 and crop 300); Adam 1e-4 with poly(0.9) decay, weight decay 1e-5, batch 32, 80 epochs.
Evaluated on the 2,000-image validation holdout while training (best checkpoint by accuracy); the paper
reports the standard test split:

  python -m jaxgraphs.tools.prepare_dataset --dataset=ava --manual_dir=~/AVA_dataset
  python -m jaxgraphs.tools.convert_torchvision --arch=densenet121 --src=densenet121-a639ec97.pth \
      --dst=~/weights/densenet121
  python -m jaxgraphs.main --config=configs/rgnet_ava.py --workdir=~/runs/rgnet_ava \
      --config.model.backbone_init=~/weights/densenet121
  python -m jaxgraphs.main --config=configs/rgnet_ava.py --workdir=~/runs/rgnet_ava --mode=eval \
      --checkpoint=best --eval_split=test

Variants (`--config=configs/rgnet_ava.py:ARG`, ARG as in jaxgraphs.configs.rgnet.VARIANT_ARG_HELP):
  Table 1:  fc_cnn (224 x 224, global pool + fc) | fcn | fcn_a | fcn_g | fcn_c_c | fcn_a_g (default)
  Table 2:  fcn,backbone=vgg16   fcn,backbone=resnet101   backbone=vgg16   backbone=resnet101
            (VGG-16 and ResNet-101 weights: convert_torchvision --arch=vgg16 / resnet101)
  Table 3:  rates=3-6  rates=6-12  rates=3-6-12  rates=3-6-12-18-24  rates=3-6-12-18 (default)
  Fig. 5:   r=1 ... r=8 (LSE smoothness), layers=1 ... layers=5 (graph convolutions)
  Sec. 4.2: pool=mean (average instead of LSE pooling)
  Others:   kind=distribution (EMD on the 10-bin vote histogram, NIMA-style), kind=regression (MSE on the mean
            rating); e.g. --config=configs/rgnet_ava.py:fcn_g,backbone=resnet101,r=2,layers=1

Batch norm before each weight layer (Sec. 3.3; phi, theta, each graph W, the classifier) is off by default and
switchable with --config.model.head.batch_norm_before_weights=True. On the composition data (configs/rgnet_shapes.py,
one seed, from scratch) it keeps the regions apart after the graph (mean cosine 0.47 instead of 0.95) but S stays
one-hot (row entropy / log N 0.05, largest weight 0.91), and FCN-A-G's validation accuracy after 150 steps drops
from 0.747 to 0.732 with the paper's unscaled S and from 0.843 to 0.780 with graph_scale = 1/sqrt(d') (FCN-A:
0.850; after 500 steps 0.788 with BN and unscaled S, 0.874 without BN and scaled); table in
(docs/paper_details.md, RGNet network).
"""

from jaxgraphs.configs import rgnet
from jaxgraphs.training.defaults import base_config

AVA_TRAIN_IMAGES = 235_510 - 2_000  # the standard train split less the validation holdout (before skips)
EPOCHS = 80
BATCH_SIZE = 32
SIZE = 300
FC_CNN_SIZE = 224  # "FC-CNN is fine-tuned on the pretrained fully connected DenseNet-121": ImageNet's size


def get_config(arg=None):
  """AVA configuration; `arg` selects a variant (module docstring)."""
  config = base_config()
  rgnet.configure(config, "binary")  # DenseNet-121 at output stride 8 + the FCN-A-G head
  rgnet.apply_arg(config, arg)
  config.data.source = "ava"
  # Sec. 3.3: resize to the input size, flip, scale by 1.05-1.25 and crop back; test: resize only.
  size = FC_CNN_SIZE if config.model.variant == "fc_cnn" else SIZE
  config.data.pp_train = f"decode|resize({size})|flip_lr|random_scale_crop(1.05, 1.25, {size})|normalize_imagenet"
  config.data.pp_eval = f"decode|resize({size})|normalize_imagenet"
  config.batch_size = BATCH_SIZE
  steps_per_epoch = AVA_TRAIN_IMAGES // BATCH_SIZE
  config.total_steps = EPOCHS * steps_per_epoch
  config.log_every_steps = 100
  config.eval_every_steps = steps_per_epoch
  config.checkpoint.every_steps = 2000
  # Sec. 3.3: Adam, lr 1e-4 decayed as (1 - t/T)^0.9 (per step here, per epoch in the paper), weight decay 1e-5 added
  # to the gradient of every parameter (biases and batch-norm scales too), as torch.optim.Adam(weight_decay=1e-5).
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-4
  config.optimizer.weight_decay = 1e-5
  config.optimizer.weight_decay_exclude = ()
  config.optimizer.schedule.name = "poly"
  config.optimizer.schedule.power = 0.9
  config.optimizer.schedule.warmup_steps = 0
  return config
