"""trialwatch: watch clinical trial registrations and record every change.

Data flows one way: config -> source fetches raw documents -> pure parse -> pure
normalize -> pure diff against the stored snapshot -> store (one transaction per
trial) -> report -> deliver.
"""

__version__ = "0.1.0"
