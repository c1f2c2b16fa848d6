"""Browser tests of the tracker (tracker_js/) against its built bundle."""
