// Package docs holds the repository's documentation (docs/*.md) and the tests that check it.
package docs
