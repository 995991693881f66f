"""Who answers: the operator's agents (definitions and their loader), the catalog of models synced
from the API, and the answerer a turn picks among them."""
