"""HTML reports of Synthex (profiles, evaluations): inline-SVG charts and a page shell.

Both are dependency-free and produce self-contained documents (no scripts, no external
files), so a report can be saved, mailed or opened offline. Every piece of text that comes
from data is escaped; ``Html`` marks strings that are already safe markup.
"""

from inwire.services.synthex.reports.page import Html, Section, document, escape, table

__all__ = ["Html", "Section", "document", "escape", "table"]
