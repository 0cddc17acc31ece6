"""The classes of a source and the ids they get in the dataset once `void_labels` are dropped.

Every reader of the `full_semantic` builder describes its classes as a list of
names and colours, the position in the list being the id in the source's label
files. `void_labels` map some of them to `IGNORE_INDEX`; the others are renumbered
0..K-1 in list order:

    table = ClassTable(["unlabelled", "car", "person"], palette, void_labels=["unlabelled"],
                       where="labels/")
    table.class_names           # ["car", "person"]
    table.map(raw_ids, "labels/00001D.png")  # uint8 ids; 0 -> 255, 1 -> 0, 2 -> 1

Raw values outside the table raise `InputError` naming the file and the values.
"""

import numpy as np

from full_semantic.raster import value_counts_text
from semseg.base.errors import InputError
from semseg.base.labels import IGNORE_INDEX


class ClassTable:
    """Source class names and colours, `void_labels`, and the raw id -> class id lookup.

    Args:
        names: sequence of str, the source's classes; the position is the raw id.
        palette: sequence of `(r, g, b)`, one per name.
        void_labels: sequence of str, names mapped to `IGNORE_INDEX` and dropped.
        where: str naming the file or config that defines the classes, for messages.
        ignored_values: raw values that mean "ignore" in the label files (e.g.
            `(255,)`); they map to `IGNORE_INDEX`.

    Attributes:
        class_names: list of str, the kept classes.
        palette: list of `[r, g, b]`, one per kept class.
        source_names: list of str, every source class.
        lookup: uint8 array `(256,)`, raw value -> class id (`IGNORE_INDEX` for
            void classes and ignored values).

    Raises:
        InputError: if a void label is unknown, every class is void, or more than
            254 classes remain.
    """

    def __init__(self, names, palette, void_labels=(), where="", ignored_values=()):
        names = [str(name) for name in names]
        if len(names) != len(palette):
            raise ValueError(
                f"Expected one colour per class. Received: {len(names)} names, "
                f"{len(palette)} colours"
            )
        void_labels = tuple(void_labels)
        unknown = [name for name in void_labels if name not in names]
        if unknown:
            raise InputError(
                f"{where}: void_labels {unknown} are not classes of this dataset; expected "
                f"some of {names}."
            )
        kept = [index for index, name in enumerate(names) if name not in void_labels]
        if not kept:
            raise InputError(f"{where}: void_labels {list(void_labels)} leave no class.")
        if len(kept) >= IGNORE_INDEX:
            raise InputError(
                f"{where}: {len(kept)} classes, but uint8 masks hold at most {IGNORE_INDEX - 1} "
                f"(id {IGNORE_INDEX} means ignore)."
            )
        if len(names) > 256:
            raise InputError(f"{where}: {len(names)} classes do not fit 8-bit label files.")
        self.source_names = names
        self.class_names = [names[index] for index in kept]
        self.palette = [[int(channel) for channel in palette[index]] for index in kept]
        self.lookup = np.full(256, IGNORE_INDEX, dtype=np.uint8)
        self.lookup[kept] = np.arange(len(kept), dtype=np.uint8)
        self._valid = np.zeros(256, dtype=bool)
        self._valid[: len(names)] = True
        self._valid[list(ignored_values)] = True

    def map(self, raw_ids, where):
        """Maps raw label values to class ids.

        Args:
            raw_ids: integer array of raw values (uint8, or any type with values
                in 0..255).
            where: str naming the label file in messages.

        Returns:
            uint8 array of the shape of `raw_ids`.

        Raises:
            InputError: if a value is not a class of the table (nor ignored).
        """
        raw_ids = np.asarray(raw_ids)
        if raw_ids.dtype != np.uint8:
            out_of_byte = (raw_ids < 0) | (raw_ids > 255)
            if out_of_byte.any():
                self._raise_unknown(raw_ids[out_of_byte], where)
            raw_ids = raw_ids.astype(np.uint8)
        valid = self._valid[raw_ids]
        if not valid.all():
            self._raise_unknown(raw_ids[~valid], where)
        return self.lookup[raw_ids]

    def _raise_unknown(self, values, where):
        values, counts = np.unique(values, return_counts=True)
        raise InputError(
            f"{where}: {len(values)} label value(s) outside the {len(self.source_names)} "
            f"classes (0..{len(self.source_names) - 1}): {value_counts_text(values, counts)}."
        )
