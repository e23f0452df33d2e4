"""Evaluation metrics, computed on the host in NumPy after the model has run.

- `multilabel_metrics`: per-class AP / mAP (VOC envelope and non-interpolated) and CP, CR, CF1, OP, OR, OF1
  with their top-3 variants (SSGRL on COCO, VOC, VG-500); `MultiLabelEvaluator` streams them.
- `aesthetics_metrics`: binary accuracy and AP (AVA), Spearman rho / Pearson r / MSE (AADB), and the EMD
  between rating distributions; `AestheticsEvaluator` streams them.
- `scene_graph_recall`: R@K, ngR@K, mR@K and zR@K in the PredCls / SGCls / SGDet protocols (LinkNet).
- `detection_metrics`: COCO-style AP, AP50, AP75 and per-class AP50 through pycocotools' COCOeval (the
  Faster R-CNN behind LinkNet).
- `masked_rows`: the accumulator both evaluators use; evaluation pads the last batch, and rows whose mask
  is 0 are dropped there, so every example counts exactly once.

Scores are fractions in [0, 1] (the papers print them x100); undefined values (e.g. a class without a
positive, a constant input to a correlation) are NaN, never a division-by-zero warning.
"""
