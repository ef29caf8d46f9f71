"""Tables, migrations and the repositories over them."""
