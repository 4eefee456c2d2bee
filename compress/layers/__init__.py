"""One handler per layer type (``base.LayerHandler``), one file per type, registered in ``registry``."""
