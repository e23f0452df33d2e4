"""Faster R-CNN (the VG detector behind LinkNet): box arithmetic, anchors, NMS, training targets, the network."""
