"""mrclass-bids: sort MRI series by what the images show, not what their headers claim."""

__version__ = "0.19.0"
