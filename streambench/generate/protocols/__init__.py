"""Protocol clients behind one seam (:mod:`.base`)."""
