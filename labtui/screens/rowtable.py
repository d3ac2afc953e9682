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

The table fits its view's width (``fit``): a column added with a ``Fit`` gives way when the
columns would be wider than the view — first its cells are shortened (``Fit.short``: an
instance id as ``i-…4f2b``, a region as ``use1``), then it is hidden, the lowest
``priority`` first — and a column without one always shows; a column that still overflows
the right edge ends in "…". When the view grows the columns come back (``on_resize``). The
data is never changed: ``get_cell`` and the filters see the whole value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import zip_longest

from rich.cells import cell_len, set_cell_size
from rich.markup import escape
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets.data_table import (
    CellDoesNotExist,
    CellKey,
    Column,
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


ELLIPSIS = "…"
FILL = 24  # cells the last column asks for when it holds longer values (see RowTable._fit)
_DIRECTIONS = {"east": "e", "west": "w", "north": "n", "south": "s", "central": "c",
               "northeast": "ne", "northwest": "nw", "southeast": "se", "southwest": "sw"}


@lru_cache(maxsize=256)
def region_code(region: str) -> str:
    """A region's short code, as AWS people write them: us-east-1 -> use1, eu-west-1 ->
    euw1, ap-southeast-2 -> apse2, eu-central-1 -> euc1, us-gov-west-1 -> usgw1. Anything
    that is not a region name ("—", "…") comes back as it is."""
    parts = region.split("-")
    if len(parts) < 3 or not parts[-1].isdigit():
        return region
    middle = "".join(_DIRECTIONS.get(part, part[:1]) for part in parts[1:-1])
    return f"{parts[0]}{middle}{parts[-1]}"


@lru_cache(maxsize=4096)
def short_id(value: str, keep: int = 4) -> str:
    """An AWS id shortened to its prefix and its last characters: i-0a1b2c3d4e5f64f2b ->
    i-…4f2b, j-2AXXXXXXGAPLF -> j-…APLF. Other text comes back as it is."""
    head, dash, tail = value.partition("-")
    if (not dash or not head.isalpha() or len(head) > 10 or not tail.isalnum()
            or not any(c.isdigit() for c in tail) or len(tail) <= keep + 1):
        return value  # a name (a bucket, a key pair), not an id
    return f"{head}-{ELLIPSIS}{tail[-keep:]}"


@dataclass(frozen=True)
class Fit:
    """How a column gives way when the table is wider than its view: ``short`` (tried
    first) shortens each cell, then the column is hidden; the lowest ``priority`` goes
    first. ``hide=False`` shortens it and never hides it."""

    priority: int = 0
    short: Callable[[str], str] | None = None
    hide: bool = True


REGION = Fit(5, region_code)


@dataclass
class FitColumn(Column):
    """A column that knows whether the fit hid it or narrowed it (``limit``)."""

    fit: Fit | None = None
    hidden: bool = False
    shortened: bool = False
    limit: int | None = None

    def get_render_width(self, data_table: DataTable) -> int:  # type: ignore[type-arg]
        if self.hidden:
            return 0
        width = self.content_width if self.auto_width else self.width
        if self.limit is not None:
            width = min(width, self.limit)
        return width + 2 * data_table.cell_padding


def ellipsize(text: str, width: int) -> str:
    """``text`` in ``width`` cells, ending in "…" when it is longer."""
    if cell_len(text) <= width:
        return text
    if width <= 1:
        return set_cell_size(text, width)
    return set_cell_size(text, width - 1) + ELLIPSIS


def priority(bindings: Iterable[object], leave: Iterable[str] = ()) -> list[Binding]:
    """``bindings`` as priority bindings (run by the app as the key arrives, while their
    widget has the focus), but those of the actions in ``leave``."""
    left = set(leave)
    return [replace(b, priority=True) for b in bindings
            if isinstance(b, Binding) and b.action not in left]


class RowTable(DataTable):
    """A DataTable that redraws only the rows whose cells changed (see the module doc)."""

    # The cursor keys as priority bindings: the app runs them as the key arrives. As plain
    # bindings a key first travels to the table and bubbles back up through every
    # ancestor's message queue before the app runs its action (the table handles no key
    # itself, so nothing is lost): under a flood of events each hop waited behind a frame,
    # 50-70 ms a key (bench/tui_latency.py). Only while the table has the focus.
    BINDINGS = priority(DataTable.BINDINGS, leave=("select_cursor",))

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._row_versions: dict[RowKey, int] = {}
        self._row_strips: LRUCache[tuple[object, ...], Strip] = LRUCache(256)  # screenfuls
        self._row_styles: dict[tuple[object, ...], tuple[Style, Style]] = {}
        self._frame: tuple[Style, tuple[int, ...], tuple[ColumnKey, ...]] | None = None
        self._fit_state: tuple[object, ...] = ()

    # -- columns that give way ----------------------------------------------------------------

    def add_column(self, label: object, *, width: int | None = None,
                   key: str | None = None, default: object = None,
                   fit: Fit | None = None) -> ColumnKey:
        """As DataTable.add_column; ``fit`` says how the column gives way in a narrow view
        (none: it always shows)."""
        column_key = super().add_column(label, width=width, key=key,  # type: ignore[arg-type]
                                        default=default)
        column = self.columns[column_key]
        self.columns[column_key] = FitColumn(column.key, column.label, column.width,
                                             column.content_width, column.auto_width, fit=fit)
        return column_key

    def fit_width(self) -> int:
        """The width the columns may take."""
        return max(0, self.scrollable_content_region.width - self._row_label_column_width)

    def _fit(self) -> bool:
        """Shorten and hide the columns that give way until the table fits its view (see the
        module doc); True when what shows changed."""
        available = self.fit_width()
        columns = [c for c in self.ordered_columns if isinstance(c, FitColumn)]
        if available <= 0 or not columns:
            return False
        for column in columns:
            column.hidden = column.shortened = False
            column.limit = None
        pad = 2 * self.cell_padding
        # The last column (an error, a note) ends at the right edge: it asks for FILL cells,
        # not for its longest value, so one long error does not hide the other columns.
        last = columns[-1]
        if last.fit is None and last.get_render_width(self) > FILL + pad:
            last.limit = max(FILL, cell_len(last.label.plain))
        total = sum(column.get_render_width(self) for column in columns)
        giving = sorted((c for c in columns if c.fit is not None),
                        key=lambda c: c.fit.priority)  # type: ignore[union-attr]
        for column in giving:
            if total <= available:
                break
            short = column.fit.short  # type: ignore[union-attr]
            if short is None:
                continue
            before = column.get_render_width(self)
            label = cell_len(column.label.plain)
            values = (plain(row.get(column.key)) for row in self._data.values())
            column.shortened = True
            column.limit = max([label, *(cell_len(short(value)) for value in values)])
            total += column.get_render_width(self) - before
        for column in giving:
            if total <= available:
                break
            if column.fit.hide:  # type: ignore[union-attr]
                total -= column.get_render_width(self)
                column.hidden = True
        if last.limit is not None:
            # All the room left, as far as its longest value.
            last.limit = None
            total = sum(column.get_render_width(self) for column in columns)
            if total > available:
                last.limit = max(cell_len(last.label.plain),
                                 last.get_render_width(self) - pad - (total - available))
        elif total > available:
            # The last column shown ends at the right edge, in "…" (a seat's screen shows
            # all of it), unless that leaves it narrower than its label or FILL.
            shown = next((c for c in reversed(columns) if not c.hidden), None)
            if shown is not None:
                room = shown.get_render_width(self) - pad - (total - available)
                if room >= min(FILL, cell_len(shown.label.plain)):
                    shown.limit = room
        state = tuple((c.hidden, c.shortened, c.limit) for c in columns)
        if state == self._fit_state:
            return False
        self._fit_state = state
        self._update_count += 1  # DataTable's caches of cells and the header
        self._row_strips.clear()
        return True

    def hidden_columns(self) -> list[str]:
        """The keys of the columns the fit hides now."""
        return [str(c.key.value) for c in self.ordered_columns
                if isinstance(c, FitColumn) and c.hidden]

    def on_resize(self, event: events.Resize) -> None:
        if self._fit():
            self._require_update_dimensions = True
            self.check_idle()

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
        if widen or self._labelled_row_exists or any(
                self.rows[key].height != 1 for key in changed):
            self.refresh()
            return
        # Rows of one line: a row's line is its index below the header (DataTable's
        # refresh_row sums the heights of every row above it). Only the changed rows in
        # view are drawn again: refreshing the whole table would draw every visible line
        # and its scrollbar anew on every batch of events (measured: 2.5 ms of each frame
        # under a flood, bench/tui_latency.py).
        header = self.header_height if self.show_header else 0
        width = max(self.size.width, self.virtual_size.width)
        top = self.scroll_offset.y - header
        bottom = top + self.size.height
        for key in changed:
            index = locations.get(key)
            if index is not None and top <= index < bottom:
                self._refresh_region(Region(0, header + index, width, 1))

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
            if self._fit():
                super()._update_dimensions(())
            return
        columns = self.ordered_columns
        for key in rows:
            data = self._data[key]
            for column in columns:
                width = cell_len(plain(data.get(column.key)))
                if width > column.content_width:
                    column.content_width = width
        self._fit()
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
                self._show_hover_cursor and self.hover_coordinate.row == -1, self._fit_state)
            strip = self._row_strips.get(key)
            if strip is None:
                # New widths (a wider cell, a column the fit hid): DataTable's own caches of
                # the header do not know the widths, only its update counter.
                self._update_count += 1
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

    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int,
                     cursor: bool = False, hover: bool = False) -> list[list[Segment]]:
        if width == 0:  # a column the fit hides: nothing, on every line of the row
            height = (self.header_height if row_index == -1
                      else self.rows[self._row_locations.get_key(row_index)].height)
            return [[] for _ in range(max(1, height))]
        return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)

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
        specs = self.columns
        segments = []
        for column_index, (column, cell_width) in enumerate(zip(columns, widths, strict=True)):
            if not cell_width:
                continue  # hidden by the fit
            text = plain(data.get(column))
            spec = specs[column]
            if isinstance(spec, FitColumn) and spec.limit is not None:
                if spec.shortened and spec.fit is not None and spec.fit.short is not None:
                    text = spec.fit.short(text)
                text = ellipsize(text, max(0, cell_width - inner))
            segments.append(Segment(pad + set_cell_size(text, max(0, cell_width - inner))
                                    + pad, cell_style + _meta(index, column_index)))
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


def set_cells(cells: dict[str, str], values: Mapping[str, str]) -> dict[str, str]:
    """Change a row's cells in a view's model; the ones that changed."""
    changed = {}
    for column, value in values.items():
        if cells[column] != value:
            cells[column] = value
            changed[column] = value
    return changed


def show_cells(table: RowTable, updates: Mapping[str, Mapping[str, str]]) -> None:
    """Changed cells (plain text) to the table, each changed row drawn once; a row the table
    does not show (filtered out) gets its cells when it comes back."""
    changes = []
    wider = []
    for key, cells in updates.items():
        if not cells or key not in table.rows:
            continue
        escaped = {column: escape(value) for column, value in cells.items()}
        changes.append((key, escaped))
        for column, value in escaped.items():
            spec = table.columns[column]  # type: ignore[index]
            if spec.auto_width and cell_len(value) > spec.content_width:
                wider.append((key, column))
    if changes:
        table.update_rows(changes, wider)
