"""PCS scheduler: WFQ over job classes with completion-time predictions."""
