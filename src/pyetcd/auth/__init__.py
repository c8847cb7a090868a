"""etcd's authentication and authorization: users, roles, range permissions, simple tokens."""
