"""Registry simulator: ClinicalTrials.gov API v2 and the WHO ICTRP portal, from one corpus.

``Corpus`` (corpus.py) is the changing data set; ``SimulatorServer`` (server.py) serves
it over HTTP with the real registries' URLs and shapes; ``faults.py`` makes it misbehave
on demand; ``render_who.py`` writes the portal's ASP.NET pages.  ``serve`` is the
blocking entry point of ``trialwatch simulate``.
"""

from pipeline.simulator.corpus import Corpus
from pipeline.simulator.faults import KINDS as FAULT_KINDS
from pipeline.simulator.server import SimulatorServer, serve

__all__ = ["Corpus", "SimulatorServer", "serve", "FAULT_KINDS"]
