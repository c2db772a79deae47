"""Load generator, scenarios and side-by-side comparisons (`televisit bench`)."""
