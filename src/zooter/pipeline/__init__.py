"""From queries to a routing table: ``generate`` (candidate responses), ``score`` (reward models),
``tag`` (query tags), with resumable ``journal``s."""
