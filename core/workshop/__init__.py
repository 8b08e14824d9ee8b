"""Workshop mode: guided paths, questions answered by the engine, the room's predictions, the glossary."""
