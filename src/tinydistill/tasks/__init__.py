"""Tasks: GLUE and user dataset specs, data readers/writers, and metrics."""

from tinydistill.tasks.metrics import compute_metrics
from tinydistill.tasks.readers import (
    infer_labels,
    load_hf_split,
    load_split,
    looks_like_regression,
    read_glue_split,
    read_table,
    read_tsv_file,
    write_tsv,
)
from tinydistill.tasks.registry import GLUE_TASKS, Example, TaskSpec, custom_task, get_task

__all__ = [
    "GLUE_TASKS",
    "Example",
    "TaskSpec",
    "compute_metrics",
    "custom_task",
    "get_task",
    "infer_labels",
    "load_hf_split",
    "load_split",
    "looks_like_regression",
    "read_glue_split",
    "read_table",
    "read_tsv_file",
    "write_tsv",
]
