"""Deploy and measure: ONNX / int8 export, side-by-side benchmarks, batch prediction, run reports.

Needs the optional ``deploy`` extra (onnx, onnxruntime, onnxscript, matplotlib)::

    pip install 'tinydistill[deploy]'

Modules: :mod:`~tinydistill.deploy.runtime` (load a model dir / export dir / .onnx file as a
runner), :mod:`~tinydistill.deploy.runners`, :mod:`~tinydistill.deploy.export`,
:mod:`~tinydistill.deploy.bench`, :mod:`~tinydistill.deploy.predict`,
:mod:`~tinydistill.deploy.report`; their CLI flags come from
:mod:`tinydistill.config` (ExportConfig, BenchConfig, PredictConfig, ReportConfig). Shared
by all of them (and free of onnx / onnxruntime): :mod:`~tinydistill.deploy.inputs` (which token
arrays a model takes), :mod:`~tinydistill.deploy.cache` (the cache dir),
:mod:`~tinydistill.deploy.timing` (the interleaved latency timer) and
:mod:`~tinydistill.deploy.table` (the teacher-vs-student tables).
"""
