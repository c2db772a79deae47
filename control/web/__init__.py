"""Browser pages the control plane serves (the visit page; the virtual clinic's in clinic/)."""
