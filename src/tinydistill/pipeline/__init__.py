"""The main job (``tinydistill pipeline``): the whole method as named, resumable stages.

Stages, in order, each writing into its own subdirectory of ``--output``::

    teacher   fine-tune the teacher                    teacher/    (off with --teacher-finetuned DIR)
    start     the student's initial weights            start/      (pruned from the teacher, or none)
    augment   TinyBERT data augmentation               augment/    (on with --augment)
    distill   the recipe (--recipe)                    student/
    evaluate  teacher and student on dev (+ test)      evaluate/
    export    ONNX + int8                              export/     (off with --no-export)
    bench     latency, PyTorch and ONNX                bench/
    report    markdown + plots                         report/
    card      the model card                           student/README.md (+ card.json)
    push      upload to the Hub                        (on with --push-to-hub REPO_ID)

``OUTPUT/pipeline.json`` (:mod:`~tinydistill.pipeline.state`) records each stage; ``pipeline.log``
keeps every line and progress bar. Options of the single commands go in the ``--config`` file::

    task: SST-2
    distill_recipe: lrcbert4      # --recipe (the key "recipe" names a config recipe file)
    augment: true
    options:                      # per stage, the options of the command it runs
      teacher: {warmup_ratio: 0.06}       # tinydistill finetune
      start: {calibration_samples: 256}   # tinydistill prune
      mlm_head: {max_steps: 100}          # tinydistill mlm-head (augment, without --augment-mlm)
      augment: {p: 0.3, candidates: 10}   # tinydistill augment
      distill: {temperature: 2.0}         # tinydistill distill
      evaluate: {batch_size: 32}          # tinydistill evaluate
      export: {weight_type: quint8}       # tinydistill export
      bench: {repeats: 50}                # tinydistill bench
      report: {repeats: 5}                # tinydistill report
      card: {license: apache-2.0}         # the model card
      push: {private: true}               # the upload

A section's value wins over the pipeline's own flag for that stage (``--teacher-lr`` vs
``options.teacher.learning_rate``); the data options and the paths that wire the stages together
are the pipeline's own and refused in a section.
"""

from tinydistill.pipeline.plan import STAGES, find_glue, with_caps
from tinydistill.pipeline.runner import run

__all__ = ["STAGES", "find_glue", "run", "with_caps"]
