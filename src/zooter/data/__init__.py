"""Training data: the LightningDataModule (``datamodule``), batching (``batching``: dataset, collator,
length-grouped sampler) and the target maths (``targets``: pure numpy)."""
