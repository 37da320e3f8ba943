# the folds compiled, where they are built for these sources (``ttfb.native``)
from ttfb import native

native.install()
