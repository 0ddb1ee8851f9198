"""OCRmyPDF 17 OCR-engine plugin: crnnocr reads the pages, OCRmyPDF makes the PDF/A.

    PYTHONPATH=/path/to/crnnocr ocrmypdf --plugin ocrmypdf_crnnocr in.pdf out.pdf

OCRmyPDF rasterises each page, hands the image to ``generate_ocr`` (its structured API, rendered
by its fpdf2 text layer) or ``generate_hocr`` (the same page as crnnocr's own hOCR), and grafts the
invisible text onto the page. The engine is configured like every other crnnocr surface, by the
``CRNNOCR_*`` environment (pack, backend, limits); ``-l`` is accepted and not used, since the model
pack decides which scripts are read.

OCRmyPDF forks its page workers from the process that imported this module: nothing here loads
ONNX Runtime or OpenVINO until a worker reads its first page (see ocr_core.process), and each
worker then keeps one engine with one inference thread (the workers already use every core).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ocrmypdf import hookimpl
from ocrmypdf.exceptions import BadArgsError, SubprocessOutputError
from ocrmypdf.pluginspec import OcrEngine, OrientationConfidence

from ocr_core import __version__

from .tree import page_element

if TYPE_CHECKING:
    from ocrmypdf import OcrOptions
    from ocrmypdf.models.ocr_element import OcrElement

    from ocr_core.result import OcrResult

NAME = "crnnocr"


def _read(input_file: Path) -> OcrResult:
    """The page image read by this process's engine, built on the first page it reads."""
    from ocr_core.process import configure_process

    configure_process(side_by_side=True)
    from ocr_core import get_engine
    from ocr_core.errors import OcrError
    from ocr_core.result import OcrResult

    try:
        result = get_engine().recognize(input_file.read_bytes())
    except OcrError as exc:
        raise SubprocessOutputError(f"{NAME} could not read {input_file.name}: {exc}") from None
    if not isinstance(result, OcrResult):  # OCRmyPDF hands over one page image at a time
        raise SubprocessOutputError(f"{NAME}: {input_file.name} is a document, not a page image")
    return result


def _dpi(input_file: Path) -> float | None:
    from PIL import Image

    with Image.open(input_file) as image:
        dpi = image.info.get("dpi")
    return float(dpi[0]) if dpi else None


class CrnnocrEngine(OcrEngine):
    """Stateless: OCRmyPDF creates it in the main process and in every worker."""

    @staticmethod
    def version() -> str:
        return __version__

    @staticmethod
    def creator_tag(options: OcrOptions) -> str:
        return f"{NAME} {__version__}"

    def __str__(self) -> str:
        return f"{NAME} {__version__}"

    @staticmethod
    def languages(options: OcrOptions) -> set[str]:
        return set()  # no language data to check: the model pack reads what it was trained on

    @staticmethod
    def get_orientation(input_file: Path, options: OcrOptions) -> OrientationConfidence:
        # No page-level opinion (crnnocr's classifier judges lines, not pages): pages stay as scanned.
        return OrientationConfidence(angle=0, confidence=0.0)

    @staticmethod
    def supports_generate_ocr() -> bool:
        return True

    @staticmethod
    def generate_ocr(input_file: Path, options: OcrOptions, page_number: int = 0) -> tuple[OcrElement, str]:
        result = _read(input_file)
        return page_element(result, _dpi(input_file), page_number), result.text

    @staticmethod
    def generate_hocr(input_file: Path, output_hocr: Path, output_text: Path, options: OcrOptions) -> None:
        result = _read(input_file)
        output_hocr.write_text(result.to_hocr(), encoding="utf-8")
        output_text.write_text(result.text, encoding="utf-8")

    @staticmethod
    def generate_pdf(input_file: Path, output_pdf: Path, output_text: Path, options: OcrOptions) -> None:
        raise NotImplementedError(f"{NAME} makes no sandwich PDF; use the default --pdf-renderer (fpdf2)")


@hookimpl
def check_options(options: OcrOptions) -> None:
    if options.ocr_engine == "auto" and options.pdf_renderer == "sandwich":
        raise BadArgsError(f"--pdf-renderer sandwich needs Tesseract; {NAME} works with the default (fpdf2)")


@hookimpl
def get_ocr_engine(options: OcrOptions | None) -> OcrEngine | None:
    """crnnocr when this plugin is loaded and no engine is named (``--ocr-engine auto``, the
    default); ``--ocr-engine tesseract`` or ``none`` still pick OCRmyPDF's own."""
    if options is not None and getattr(options, "ocr_engine", "auto") != "auto":
        return None
    return CrnnocrEngine()
