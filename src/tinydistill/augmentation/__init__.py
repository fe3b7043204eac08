"""TinyBERT data augmentation (batched masked-LM and word-vector candidates) and MLM-head training.

``runner.augment_task`` writes an augmented train file for ``tinydistill distill --train-file``;
``mlm_head.train_mlm_head`` turns an encoder without an MLM head into a usable masked LM.
"""

from tinydistill.augmentation.masked_lm import load_masked_lm
from tinydistill.augmentation.mlm_candidates import MLMCandidates
from tinydistill.augmentation.runner import AugmentConfig, Augmenter, augment_task, merge_shards
from tinydistill.augmentation.sampler import sample_variants, split_words
from tinydistill.augmentation.stopwords import STOPWORDS, eligible
from tinydistill.augmentation.word_vectors import WordVectors

__all__ = [
    "STOPWORDS",
    "AugmentConfig",
    "Augmenter",
    "MLMCandidates",
    "WordVectors",
    "augment_task",
    "eligible",
    "load_masked_lm",
    "merge_shards",
    "sample_variants",
    "split_words",
]
