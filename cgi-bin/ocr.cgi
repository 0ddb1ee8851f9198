#!/usr/bin/env python3
"""crnnocr OCR endpoint for any CGI web server (RFC 3875); the contract is in the README.

`make deploy` installs this file with its shebang pointing at the installed venv's Python, run
``-I -S``: isolated, and without ``site``, whose venv set-up costs a forwarded hit ~5 ms it does
not need. When the worker pool answers (``ocr_http.forward``: stdlib only) the request goes there;
otherwise ``site`` is set up after all and the request is answered in-process. The code sits next
to ``cgi-bin/`` in the same tree (``ocr_http`` for HTTP, ``ocr_core`` for OCR); CRNNOCR_HOME
overrides that tree and CRNNOCR_MODEL_DIR the model directory.
"""

import os
import sys

HOME = os.environ.get("CRNNOCR_HOME") or os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
sys.path.insert(0, HOME)

from ocr_http.forward import forward

if not forward(os.environ):
    if sys.flags.no_site:
        import site

        site.main()
    from ocr_http.cgi_main import main

    main()
