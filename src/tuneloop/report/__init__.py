"""``tuneloop report``: the loop on one page (also served at ``/`` by ``tuneloop serve``)."""
