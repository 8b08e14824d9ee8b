"""Workshop mode: guided paths, questions answered by the engine, and the room's predictions (the page
vocabulary every page shares, the glossary and the takeaways, lives in core.view)."""
