"""Deploy and measure: ONNX / int8 export, side-by-side benchmarks, batch prediction, run reports.

Needs the optional ``deploy`` extra (onnx, onnxruntime, onnxscript, matplotlib)::

    pip install 'tinydistill[deploy]'

Modules: :mod:`~tinydistill.deploy.runtime` (load a model dir / export dir / .onnx file as a
runner), :mod:`~tinydistill.deploy.export`, :mod:`~tinydistill.deploy.bench`,
:mod:`~tinydistill.deploy.predict` and :mod:`~tinydistill.deploy.report`; the CLI flags come from
:mod:`tinydistill.config` (ExportConfig, BenchConfig, PredictConfig, ReportConfig).
"""
