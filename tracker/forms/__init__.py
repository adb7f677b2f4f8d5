"""WTForms forms, one module per resource."""
