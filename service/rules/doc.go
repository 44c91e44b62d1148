// Package rules holds the privacy rules that are data: the Person fields,
// the purposes and the fields each may use, the legal bases, the data
// categories and the hold bases with their laws, and whether a processor
// agreement covers a purpose and categories. Handlers in the packages
// above read these tables; none keeps a rule of its own beside them.
package rules
