"""A module shaped like what the static pass reports of an extension (a function, a type
with a method, a property and slots), for models built from bindings."""


class Box:
    def __init__(self, size):
        self.items = list(range(size))
        self.label = "box"

    def put(self, item):
        self.items.append(item)

    def __len__(self):
        return len(self.items)

    def __iadd__(self, other):
        self.items.extend(other.items)
        return self


def scale(value, factor):
    return value * factor
