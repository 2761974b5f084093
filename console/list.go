package console

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/dojo-webhooks/dojo-webhooks/api"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// Statuses are the status filter's choices, in the state machine's order.
var Statuses = []string{string(statekv.StatusActive), string(statekv.StatusActiveTmp),
	string(statekv.StatusInactiveTmp), string(statekv.StatusInactivePermanent), api.StatusInvalid}

// listQuery is the list's filters, sort and page, as kept in its URL.
type listQuery struct {
	Status, Owner, Q, Sort string
	Page, Size             int
}

func listQueryOf(r *http.Request) listQuery {
	v := r.URL.Query()
	q := listQuery{Status: v.Get("status"), Owner: v.Get("owner"), Q: v.Get("q"), Sort: v.Get("sort"), Size: pageSize(v.Get("size"))}
	q.Page, _ = strconv.Atoi(v.Get("page"))
	q.Page = max(q.Page, 1)
	return q
}

// values are the query's URL parameters; defaults are left out.
func (q listQuery) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"status": q.Status, "owner": q.Owner, "q": q.Q, "sort": q.Sort} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Size != DefaultPageSize {
		v.Set("size", strconv.Itoa(q.Size))
	}
	if q.Page > 1 {
		v.Set("page", strconv.Itoa(q.Page))
	}
	return v
}

func (q listQuery) url() string {
	if s := q.values().Encode(); s != "" {
		return "/ui/endpoints?" + s
	}
	return "/ui/endpoints"
}

// PageURL is the list's URL at page n, with the same filters.
func (q listQuery) PageURL(n int) string { q.Page = n; return q.url() }

// SortURL is the list's URL sorted by sort, from the first page.
func (q listQuery) SortURL(sort string) string { q.Sort, q.Page = sort, 1; return q.url() }

// AriaSort is the aria-sort value of the column sorted by sort.
func (q listQuery) AriaSort(sort string) string {
	if q.Sort == sort || q.Sort == "" && sort == "id" {
		if sort == "last_error" {
			return "descending"
		}
		return "ascending"
	}
	return "none"
}

// pageLink is one entry of the pager: a page number, or a gap.
type pageLink struct {
	N       int
	URL     string
	Current bool
	Gap     bool
}

type listData struct {
	Query       listQuery
	Items       []api.Endpoint
	Total       int
	From, To    int // 1-based positions of the page's first and last row
	Pages       int
	Links       []pageLink
	Prev, Next  string
	Statuses    []string
	Owners      []string
	Sizes       []int
	Counts      map[string]int
	Error       string
	SnapshotErr string
	RefreshMS   int64
}

// pagerWindow is how many page numbers the pager shows on each side of the current one.
const pagerWindow = 2

func (c *Console) listPage(w http.ResponseWriter, r *http.Request, s session) {
	q := listQueryOf(r)
	d := listData{Query: q, Statuses: Statuses, Sizes: PageSizes, Counts: map[string]int{}, RefreshMS: RefreshInterval.Milliseconds()}
	ctx, cancel := c.ctx(r)
	defer cancel()
	all, snapErr := c.cfg.API.Endpoints(ctx)
	if snapErr != nil {
		d.SnapshotErr = snapErr.Error()
	}
	for _, e := range all {
		d.Counts[e.Status]++
		if e.Owner != "" && !slices.Contains(d.Owners, e.Owner) {
			d.Owners = append(d.Owners, e.Owner)
		}
	}
	slices.Sort(d.Owners)
	f := api.Filter{Status: q.Status, Owner: q.Owner, Q: q.Q, Sort: q.Sort}
	status := http.StatusOK
	if err := f.Validate(); err != nil {
		d.Error, status = err.Error(), http.StatusBadRequest
		c.render(w, r, status, "list", "Endpoints", &s, d)
		return
	}
	page := api.PageAt(all, f, q.Page, q.Size)
	d.Items, d.Total = page.Items, page.Total
	d.Pages = max((page.Total+q.Size-1)/q.Size, 1)
	if len(d.Items) > 0 {
		d.From = (q.Page-1)*q.Size + 1
		d.To = d.From + len(d.Items) - 1
	}
	if q.Page > 1 {
		d.Prev = q.PageURL(min(q.Page-1, d.Pages))
	}
	if q.Page < d.Pages {
		d.Next = q.PageURL(q.Page + 1)
	}
	for n := 1; n <= d.Pages; n++ {
		near := n == 1 || n == d.Pages || n >= q.Page-pagerWindow && n <= q.Page+pagerWindow
		switch {
		case near:
			d.Links = append(d.Links, pageLink{N: n, URL: q.PageURL(n), Current: n == q.Page})
		case len(d.Links) > 0 && !d.Links[len(d.Links)-1].Gap:
			d.Links = append(d.Links, pageLink{Gap: true})
		}
	}
	c.render(w, r, status, "list", "Endpoints", &s, d)
}
