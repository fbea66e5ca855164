"""Export a registry version of the student for the edge: merged weights, GGUF, ONNX (+INT8).

One module per format (``merged``, ``gguf_format``, ``onnx_format``); each export is measured
against its source (the adapter on its base) on the version's regression set by the runtime that
will serve it (``runtimes``), gets a card (``card``) and is added under
``versions/vN/exports/<format>-<quant>/`` atomically (``publish``). ``pipeline`` ties them together.
"""
