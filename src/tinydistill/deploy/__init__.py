"""Deploy and measure: ONNX / int8 export, side-by-side benchmarks, batch prediction, run reports.

Needs the optional ``deploy`` extra (onnx, onnxruntime, onnxscript, matplotlib)::

    pip install 'tinydistill[deploy]'

Modules: :mod:`~tinydistill.deploy.runtime` (load a model dir / export dir / .onnx file as a
runner), :mod:`~tinydistill.deploy.export`, :mod:`~tinydistill.deploy.bench`,
:mod:`~tinydistill.deploy.predict`, :mod:`~tinydistill.deploy.report` and the CLI glue in
:mod:`~tinydistill.deploy.commands`.
"""
