"""A base class named like a C type with a short tp_name (`_short.Base`)."""


class Base:
    def __init__(self, label="x"):
        self.label = label

    def relabel(self, label):
        self.label = label


Base.__module__ = "_short"
