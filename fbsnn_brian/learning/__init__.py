"""Training: the Trainer, the engine interface it drives, recorded-rule training and
augmentation.
"""
