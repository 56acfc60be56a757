"""Evaluation: one functional definition of every routing metric (``functional``), the torchmetrics
class over it (``metrics``), ``zooter report`` (``report``) and its rendering (``render``)."""
