"""mc.train: a Keras-style training loop (Trainer.fit / evaluate / predict), metrics, callbacks,
checkpoints and plots.

    from minicnn.train import Trainer, EarlyStopping, ModelCheckpoint
    history = Trainer(model, optimizer, "cross_entropy", ["accuracy"]).fit(
        train_loader, epochs=10, val_data=test_loader)
"""
from .callbacks import (Callback, CSVLogger, EarlyStopping, History, LRScheduler, ModelCheckpoint,
                        Profile, ProgressBar, TerminateOnNaN)
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .metrics import (Accuracy, ConfusionMatrix, F1Score, Metric, Precision, Recall,
                      TopKAccuracy, confusion_matrix, get_metric, precision_recall_f1)
from .trainer import NonFiniteLossError, Trainer

__all__ = ["Trainer", "NonFiniteLossError", "Callback", "History", "EarlyStopping",
           "ModelCheckpoint", "LRScheduler", "CSVLogger", "ProgressBar", "TerminateOnNaN",
           "Profile",
           "save_checkpoint", "load_checkpoint", "CheckpointError", "Metric", "Accuracy",
           "TopKAccuracy", "ConfusionMatrix", "Precision", "Recall", "F1Score",
           "confusion_matrix", "precision_recall_f1", "get_metric"]
