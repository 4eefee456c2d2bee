"""The embedded demo assets: the digits classifier (``assets``) and the digit-scenes segmenter (``seg``)."""
