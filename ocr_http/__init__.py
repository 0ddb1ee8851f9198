"""HTTP adapter for crnnocr: CGI request in, ``ocr_core`` call, HTTP response out.

No OCR logic lives here. Modules are split by cost so that a request imports only what it
needs: ``response`` and ``settings`` are stdlib-only and cheap; ``request`` (multipart, base64,
JSON) is imported for POST only; ``ocr_core``'s numpy/OpenCV/ONNX Runtime stack only when an
image is actually recognised.
"""
