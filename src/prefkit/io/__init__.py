"""Reading and writing preference data: records, formats, the canonical store."""
