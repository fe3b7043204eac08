"""TinyBERT data augmentation (batched masked-LM and word-vector candidates) and MLM-head training.

``runner.augment_task`` writes an augmented train file for ``tinydistill distill --train-file``;
``mlm_head.train_mlm_head`` turns an encoder without an MLM head into a usable masked LM.
"""

from tinydistill.augment.masked_lm import load_masked_lm
from tinydistill.augment.mlm_candidates import MLMCandidates
from tinydistill.augment.runner import AugmentConfig, Augmenter, augment_task, merge_shards
from tinydistill.augment.sampler import sample_variants, split_words
from tinydistill.augment.stopwords import STOPWORDS, eligible
from tinydistill.augment.word_vectors import WordVectors

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
