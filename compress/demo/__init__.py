"""The embedded demo assets: the digits classifier (``assets``), the digit-scenes segmenter (``seg``) and the digit-scenes detector (``det``)."""
