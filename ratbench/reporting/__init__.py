"""Reading finished cells: results frames, table rows and rendering, paper tables, statistics,
the report, plots, the viewer and the ERASER export."""
