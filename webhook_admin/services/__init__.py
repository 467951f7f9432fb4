"""Operations that change state. They flush and log, never commit: the caller commits once."""
