"""A DataTable whose rows stay cheap to draw while their cells change many times a second.

Textual's DataTable renders every cell through rich (``Padding`` in ``Styled``, then
``console.render_lines``) and keys all of its render caches on one counter that every
``update_cell`` bumps. So one changed cell throws away the rendering of every row, and the
next frame renders each visible cell again: with 500 seats under a flood of events, about
3 ms per row and 90 ms per frame, and a key press waited behind those frames.

``RowTable`` keeps DataTable for everything else — keys, cursor, scrolling, sorting, the
header, ``get_cell``, the messages — and changes three things:

- ``update_cell`` bumps only the version of the row it changes (and refreshes that row);
- each data row is drawn as one line of plain-text cells (no markup, no wrapping: rows are
  one line high), with the styles DataTable would give it (zebra, cursor, hover, its CSS
  component classes) and the same ``row``/``column`` meta for the mouse, and the line is
  cached by (row, its version, its index, cursor, hover, widths, scroll, width);
- the widths of new rows are measured as the cells' plain text (``cell_len``), not by
  rendering each cell.

Cells are ``str`` holding escaped markup, as DataTable takes them (``rich.markup.escape``):
a cell with a ``[`` is read back through ``Text.from_markup`` so it shows the text it
escaped. Escape sequences and control characters (a remote error may hold them) are
dropped (``labtui.terminal.plain``), never sent to the terminal; a tab or a newline shows as a
space. Rows with labels, rows taller than one line, fixed rows
and fixed columns, and cursor types other than ``row`` are drawn by DataTable itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from itertools import zip_longest

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets.data_table import (
    CellDoesNotExist,
    CellKey,
    ColumnKey,
    DuplicateKey,
    Row,
    RowKey,
)

from labtui import terminal

_SPACES = str.maketrans("\t\n", "  ")


@lru_cache(maxsize=4096)
def plain(value: object) -> str:
    """The text a cell shows: escaped markup read back, without terminal control sequences
    (one line: a tab or a newline is a space)."""
    if value is None:
        return ""
    # The sequences first: rich reads markup around them and drops some of their bytes.
    text = terminal.plain(value if isinstance(value, str) else str(value))
    if "[" in text:
        text = Text.from_markup(text).plain
    return text.translate(_SPACES)


class RowTable(DataTable):
    """A DataTable that redraws only the rows whose cells changed (see the module doc)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._row_versions: dict[RowKey, int] = {}
        self._row_strips: LRUCache[tuple[object, ...], Strip] = LRUCache(256)  # screenfuls
        self._row_styles: dict[tuple[object, ...], tuple[Style, Style]] = {}
        self._frame: tuple[Style, tuple[int, ...], tuple[ColumnKey, ...]] | None = None

    # -- data ---------------------------------------------------------------------------------

    def update_cell(self, row_key: RowKey | str, column_key: ColumnKey | str, value: object,
                    *, update_width: bool = False) -> None:
        """As DataTable.update_cell, but only this row is drawn again."""
        self.update_rows([(row_key, {column_key: value})],
                         wider=[(row_key, column_key)] if update_width else ())

    def update_rows(self, changes: Iterable[tuple[RowKey | str, Mapping[ColumnKey | str, object]]],
                    wider: Iterable[tuple[RowKey | str, ColumnKey | str]] = ()) -> None:
        """Set cells of several rows at once: each changed row is drawn again, once.
        ``wider`` names the cells whose new value may widen their column."""
        locations = self._row_locations
        changed: list[RowKey] = []
        for row_key, cells in changes:
            key = RowKey(row_key) if isinstance(row_key, str) else row_key
            if key not in locations:
                raise CellDoesNotExist(f"No row exists for row_key={key!r}.")
            data = self._data[key]
            for column_key, value in cells.items():
                column = ColumnKey(column_key) if isinstance(column_key, str) else column_key
                if column not in self._column_locations:
                    raise CellDoesNotExist(
                        f"No cell exists for row_key={key!r}, column_key={column!r}.")
                data[column] = value
            self._row_versions[key] = self._row_versions.get(key, 0) + 1
            changed.append(key)
        widen = False
        for row_key, column_key in wider:
            self._updated_cells.add(CellKey(RowKey(row_key) if isinstance(row_key, str)
                                            else row_key,
                                            ColumnKey(column_key) if isinstance(column_key, str)
                                            else column_key))
            widen = True
        if widen:
            self._require_update_dimensions = True
        if not changed:
            return
        if (widen or len(changed) > 1 or self._labelled_row_exists
                or self.rows[changed[0]].height != 1):
            # The rows that did not change come from the line cache: one refresh of the
            # widget costs less than working out many regions.
            self.refresh()
            return
        # One row of one line: its line is its index below the header (DataTable's
        # refresh_row sums the heights of every row above it).
        header = self.header_height if self.show_header else 0
        y = header + locations.get(changed[0])
        self._refresh_region(Region(0, y, max(self.size.width, self.virtual_size.width), 1))

    def replace_rows(self, rows: Iterable[tuple[str, Sequence[object]]]) -> None:
        """Show exactly these rows (key, cells), in this order: ``clear()`` then one pass,
        where ``add_row`` for each of 500 rows cost more than drawing them. The cursor goes
        to the first row, as after ``clear()``."""
        had_rows = self.row_count > 0
        self.clear()
        columns = [column.key for column in self.ordered_columns]
        locations = self._row_locations
        data, metadata, new_rows = self._data, self.rows, self._new_rows
        for index, (key, cells) in enumerate(rows):
            row_key = RowKey(key)
            if row_key in locations:
                raise DuplicateKey(f"The row key {row_key!r} already exists.")
            if len(cells) > len(columns):
                raise ValueError("More values provided than there are columns.")
            locations[row_key] = index
            data[row_key] = dict(zip_longest(columns, cells))
            metadata[row_key] = Row(row_key, 1, None, False)
            new_rows.add(row_key)
        self._require_update_dimensions = True
        self._update_count += 1
        self.cursor_coordinate = self.cursor_coordinate
        if self.row_count and not had_rows and self.show_cursor and self.cursor_type != "none":
            self._highlight_cursor()  # as add_row: a cursor where there was none
        self.check_idle()

    def _update_dimensions(self, new_rows: object) -> None:
        """Measure new rows as their plain text: rendering each cell of 500 new rows to
        measure it cost more than the rest of a filter change."""
        rows = [key for key in new_rows if key in self._row_locations]  # type: ignore[attr-defined]
        if any(self.rows[key].label is not None or self.rows[key].height != 1 for key in rows):
            super()._update_dimensions(rows)
            return
        columns = self.ordered_columns
        for key in rows:
            data = self._data[key]
            for column in columns:
                width = cell_len(plain(data.get(column.key)))
                if width > column.content_width:
                    column.content_width = width
        width = sum(column.get_render_width(self) for column in self.columns.values())
        header = self.header_height if self.show_header else 0
        size = Size(width + self._row_label_column_width, self._total_row_height + header)
        height, own_width = self.styles.height, self.styles.width
        if (size.width == self.virtual_size.width and self.is_mounted
                and height is not None and not height.is_auto
                and own_width is not None and not own_width.is_auto):
            # More or fewer rows, and the table's own size does not depend on them (its
            # height and width are not auto): the scrollbars change, the screen's layout
            # does not (a layout repaints the whole screen). A scrollbar that appears or
            # goes still lays the screen out (show_*_scrollbar do).
            self.set_reactive(RowTable.virtual_size, size)
            self._scroll_update(size)
            self.refresh()
        else:
            self.virtual_size = size

    # -- drawing ------------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        self._row_strips.clear()
        self._row_styles.clear()
        super().notify_style_update()

    def _plain_rows(self) -> bool:
        return (self.cursor_type == "row" and not self.fixed_rows and not self.fixed_columns
                and not self._labelled_row_exists)

    def _frame_now(self) -> tuple[Style, tuple[int, ...], tuple[ColumnKey, ...]]:
        columns = self.ordered_columns
        return (self.rich_style, tuple(column.get_render_width(self) for column in columns),
                tuple(column.key for column in columns))

    def render_lines(self, crop: Region) -> list[Strip]:
        # The widget's style and the column widths, once per frame rather than per line.
        self._frame = self._frame_now()
        try:
            return super().render_lines(crop)
        finally:
            self._frame = None

    def render_line(self, y: int) -> Strip:
        if not self._plain_rows():
            return super().render_line(y)
        base_style, widths, columns = self._frame or self._frame_now()
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        header = self.header_height if self.show_header else 0
        if y < header:
            # DataTable draws the header; it changes with the columns, not with the rows.
            key: tuple[object, ...] = (
                "header", y, tuple(str(self.columns[c].label) for c in columns), widths,
                scroll_x, width, base_style, self._pseudo_class_state,
                self._show_hover_cursor and self.hover_coordinate.row == -1)
            strip = self._row_strips.get(key)
            if strip is None:
                strip = self._row_strips[key] = super().render_line(y)
            return strip
        try:
            row_key, _ = self._get_offsets(y + scroll_y)
        except LookupError:
            return Strip.blank(width, base_style)
        if self.rows[row_key].height != 1:
            return self._render_line(y + scroll_y, scroll_x, scroll_x + width, base_style)
        index = self._row_locations.get(row_key)
        cursor = self.show_cursor and self.cursor_coordinate.row == index
        hover = (self.show_cursor and self._show_hover_cursor
                 and self.hover_coordinate.row == index)
        key = (row_key, self._row_versions.get(row_key, 0), index, cursor, hover, widths,
               scroll_x, width, base_style, self._pseudo_class_state)
        strip = self._row_strips.get(key)
        if strip is None:
            strip = self._row_strips[key] = self._draw_row(
                row_key, index, cursor, hover, widths, columns, scroll_x, width, base_style)
        return strip

    def _styles_for(self, index: int, cursor: bool, hover: bool,
                    base_style: Style) -> tuple[Style, Style]:
        """The style of a row's cells and of the rest of its line (before the meta), as
        DataTable composes them: the zebra row style, then the hover and cursor component
        styles; the CSS-priority colours after."""
        zebra = index % 2 if self.zebra_stripes else 0
        key = (zebra, cursor, hover, base_style, self._pseudo_class_state,
               self.cursor_foreground_priority, self.cursor_background_priority)
        styles = self._row_styles.get(key)
        if styles is None:
            row_style = self._get_row_style(index, base_style)
            component, post = self._get_styles_to_render_cell(
                False, False, False, hover, cursor, True, True,
                self.cursor_foreground_priority == "css",
                self.cursor_background_priority == "css")
            extend, _ = self._get_styles_to_render_cell(False, False, False, hover, cursor,
                                                        True, True, False, False)
            styles = self._row_styles[key] = (row_style + component + post,
                                              row_style + extend)
        return styles

    def _draw_row(self, row_key: RowKey, index: int, cursor: bool, hover: bool,
                  widths: tuple[int, ...], columns: tuple[ColumnKey, ...], scroll_x: int,
                  width: int, base_style: Style) -> Strip:
        """One row as DataTable would draw it: each cell padded by ``cell_padding`` on both
        sides, in the row's style, with the row/column meta the mouse handlers read."""
        cell_style, extend_style = self._styles_for(index, cursor, hover, base_style)
        data = self._data[row_key]
        pad = " " * self.cell_padding
        inner = 2 * self.cell_padding
        segments = [
            Segment(pad + set_cell_size(plain(data.get(column)), max(0, cell_width - inner))
                    + pad, cell_style + _meta(index, column_index))
            for column_index, (column, cell_width) in enumerate(
                zip(columns, widths, strict=True))]
        # The rest of the line, past the last column, in the row's colours.
        rest = max(0, width - sum(widths) - self._row_label_column_width)
        segments.append(Segment(" " * rest, extend_style + _meta(index, 0, True)))
        strip = Strip(segments)
        if scroll_x or strip.cell_length > width:
            strip = strip.crop(scroll_x, scroll_x + width)
        return strip.adjust_cell_length(width, base_style).simplify()


@lru_cache(maxsize=16384)
def _meta(row: int, column: int, out_of_bounds: bool = False) -> Style:
    """The meta DataTable puts on a cell (its click and hover handlers read it)."""
    if out_of_bounds:
        return Style.from_meta({"row": row, "column": column, "out_of_bounds": True})
    return Style.from_meta({"row": row, "column": column})
