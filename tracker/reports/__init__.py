"""Reports: the emails journal and its filters, the dashboard, exports and pool usage.

`periods` turns a period in the account's time zone into UTC bounds; `emails`
builds the filtered, keyset-paginated query that the list, the exports and the
dashboard's links share.
"""
