"""The one date format of every page (inbox and admin alike): "28 Nov 2026, 19:23 UTC".

The time zone's abbreviation is part of it (site time zone: FLOWDESK_TIME_ZONE), so no time is
ever shown unmarked.
"""

DATE_FORMAT = "j M Y"
DATETIME_FORMAT = "j M Y, H:i T"
SHORT_DATE_FORMAT = "j M Y"
SHORT_DATETIME_FORMAT = "j M Y, H:i T"
TIME_FORMAT = "H:i T"
DECIMAL_SEPARATOR = "."
THOUSAND_SEPARATOR = ","
NUMBER_GROUPING = 3
