"""The Bottle admin page and management API: arrives with the admin issue."""
