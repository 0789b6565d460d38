"""Run exporter `onnx`: a trained run as ONNX models for onnxruntime (`sercli export onnx RUN
-o DIR`, read back by `sercli predict DIR` or a few lines of onnxruntime). See sercli_onnx.exporter."""

from sercli.hookspecs import hookimpl


@hookimpl
def register_run_exporters(register):
    from sercli_onnx.exporter import OnnxExporter  # no torch or onnx until an export runs

    register(OnnxExporter)
